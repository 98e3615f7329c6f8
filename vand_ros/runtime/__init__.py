"""Runtime layer (numpy, onnxruntime only): the observation layout and assembler, the ONNX policy session.

Everything here runs on the robot. Nothing in this package may import torch, rosbags or mujoco.
"""
