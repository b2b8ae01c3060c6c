"""TorchScript and ONNX export of namemodels models, with verification in several runtimes."""
