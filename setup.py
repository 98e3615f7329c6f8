"""Build script for vand_ros (ament_python; also a plain pip-installable package).

The version lives in package.xml alone; this file reads it from there.
"""

import re
from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "vand_ros"
HERE = Path(__file__).resolve().parent


def package_xml_version() -> str:
    text = (HERE / "package.xml").read_text(encoding="utf-8")
    match = re.search(r"<version>\s*([^<\s]+)\s*</version>", text)
    if match is None:
        raise RuntimeError("package.xml has no <version> element")
    return match.group(1)


ROS_WHEELS = [
    "ros-rclpy[fastrtps]",
    "ros-std-msgs",
    "ros-sensor-msgs",
    "ros-nav-msgs",
    "ros-geometry-msgs",
    "ros-std-srvs",
    "ros-trajectory-msgs",
    "ros-diagnostic-msgs",
    "ros-rosgraph-msgs",
    "ros-lifecycle-msgs",  # rclpy.lifecycle: the controller is a managed node
]

EXTRAS = {
    # What the robot runs besides ROS itself.
    "runtime": ["numpy>=1.22", "onnxruntime>=1.16", "pyyaml>=5.4"],
    # ROS 2 (Kilted) from PyPI wheels. Skip this extra where ROS comes from apt: the system rclpy is used.
    "ros": ROS_WHEELS,
    # Offline pipeline: bags -> dataset -> training -> ONNX. The torch pin keeps pip off CUDA wheels.
    "train": [
        "torch==2.13.0",
        "rosbags>=0.10",
        "onnx>=1.16",
        "onnxscript>=0.1",
        "matplotlib>=3.7",
        "tqdm>=4.60",
        "tensorboard>=2.14",
    ],
    "sim": ["mujoco>=3.3", "rosbags>=0.10", "pillow>=9"],
    "dev": [
        "pytest>=7",
        "ruff>=0.6",
        "mypy>=1.10",
        "hypothesis>=6",
        "colcon-common-extensions",
        "setuptools<80",  # colcon-core's own pin; stated here so pip resolves it once
    ],
}
EXTRAS["all"] = sorted({req for reqs in EXTRAS.values() for req in reqs})
# Not in "all": the campaign on a Ray cluster (`vand-ros evaluate --backend ray`), asked for explicitly.
EXTRAS["cluster"] = ["ray>=2.9"]
EXTRAS["test"] = EXTRAS["dev"]  # colcon test reads extras_require["test"]

setup(
    name=PACKAGE,
    version=package_xml_version(),
    description="VAND-regularised recurrent policies for ROS 2 mobile manipulators",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(exclude=["test", "test.*"]),
    include_package_data=True,
    package_data={f"{PACKAGE}.simulation": ["assets/*.urdf"]},  # the sim builds its model from the URDF
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
        (f"share/{PACKAGE}/models", glob("models/*.onnx") + glob("models/*.md")),
        (f"share/{PACKAGE}/urdf", glob(f"{PACKAGE}/simulation/assets/*.urdf")),
    ],
    install_requires=["numpy>=1.22", "pyyaml>=5.4"],
    extras_require=EXTRAS,
    zip_safe=True,
    entry_points={
        "console_scripts": [
            "vand-ros = vand_ros.cli:main",
            "controller_node = vand_ros.controller.node:main",
            "sim_node = vand_ros.simulation.node:main",
            "recorder_node = vand_ros.simulation.recorder:main",
        ],
    },
)
