"""vand_ros: VAND-regularised recurrent policies for ROS 2 mobile manipulators.

Subpackages, one per layer; the arrows point one way and the robot side never reaches torch:

    learning (torch)  ->  runtime (numpy, onnxruntime)  <-  controller (rclpy)
    data (rosbags)    ->  runtime                           simulation (mujoco, rclpy)
    evaluation        ->  runtime, simulation, learning, data
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("vand_ros")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
