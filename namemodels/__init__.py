"""namemodels: character-level recurrent models for names.

Importing this package does not import torch: inference from shipped models runs on onnxruntime.
"""
__version__ = "0.1.0"
