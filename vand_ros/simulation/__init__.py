"""Simulation layer (mujoco, rclpy): the simulated mobile manipulator, scripted demonstrators, recording."""
