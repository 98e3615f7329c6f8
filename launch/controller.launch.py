"""Run the VAND policy controller on a robot.

    ros2 launch vand_ros controller.launch.py model:=/path/policy.onnx

Arguments:
    model         path to the exported ONNX policy (required)
    config        controller parameter file (default: the package's config/controller.yaml)
    use_sim_time  follow /clock (true in simulation)
    autostart     configure and activate the (lifecycle) node at start-up (default true); with false,
                  drive it with `ros2 lifecycle set /vand_controller configure` and `... activate`
    namespace     namespace of the controller node
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
            DeclareLaunchArgument("model", description="path to the exported ONNX policy"),
            DeclareLaunchArgument(
                "config",
                default_value=PathJoinSubstitution([share, "config", "controller.yaml"]),
                description="controller parameter file",
            ),
            DeclareLaunchArgument("use_sim_time", default_value="false", description="follow /clock"),
            DeclareLaunchArgument("namespace", default_value="", description="namespace of the controller"),
            DeclareLaunchArgument(
                "autostart", default_value="true", description="configure and activate at start-up"
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
                        "use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool),
                        "autostart": ParameterValue(LaunchConfiguration("autostart"), value_type=bool),
                    },
                ],
            ),
        ]
    )
