"""Learning layer (torch): the VAND recurrent cell and its baselines, the policy, training and ONNX export."""
