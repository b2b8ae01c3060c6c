from namemodels.inference.predictor import *  # noqa: F401,F403 -- the old import path of load and Predictor
