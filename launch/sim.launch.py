"""Simulation + controller: `ros2 launch vand_ros sim.launch.py [model:=...] [instruction:=wipe]`.

Starts the MuJoCo robot (sim_node, publishing /clock) and the controller against it, on sim time,
enabled from the start with the given instruction. Without `model:=`, the package's shipped policy is used.

Arguments:
    model              ONNX policy (default: share/vand_ros/models/policy.onnx)
    config             controller parameter file (default: share/vand_ros/config/controller.yaml)
    sim_config         simulation parameter file (default: share/vand_ros/config/sim.yaml)
    instruction        behaviour to perform from the start (a word of the model's vocabulary)
    real_time_factor   1.0 = real time; 0 = as fast as possible
    namespace          namespace of the controller node
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("vand_ros")
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "model",
                default_value=PathJoinSubstitution([share, "models", "policy.onnx"]),
                description="ONNX policy",
            ),
            DeclareLaunchArgument(
                "config",
                default_value=PathJoinSubstitution([share, "config", "controller.yaml"]),
                description="controller parameter file",
            ),
            DeclareLaunchArgument(
                "sim_config",
                default_value=PathJoinSubstitution([share, "config", "sim.yaml"]),
                description="simulation parameter file",
            ),
            DeclareLaunchArgument("instruction", default_value="wipe", description="behaviour to perform"),
            DeclareLaunchArgument(
                "real_time_factor", default_value="1.0", description="1.0 real time, 0 fast"
            ),
            DeclareLaunchArgument("namespace", default_value="", description="namespace of the controller"),
            Node(
                package="vand_ros",
                executable="sim_node",
                name="vand_sim",
                output="screen",
                parameters=[
                    LaunchConfiguration("sim_config"),
                    {
                        "real_time_factor": ParameterValue(
                            LaunchConfiguration("real_time_factor"), value_type=float
                        )
                    },
                ],
            ),
            Node(
                package="vand_ros",
                executable="controller_node",
                name="vand_controller",
                namespace=LaunchConfiguration("namespace"),
                output="screen",
                emulate_tty=True,
                parameters=[
                    LaunchConfiguration("config"),
                    {
                        "model": LaunchConfiguration("model"),
                        "use_sim_time": True,
                        "autostart": True,
                        "instruction": LaunchConfiguration("instruction"),
                    },
                ],
            ),
        ]
    )
