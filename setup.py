"""pip-installable pure library of pose_ros (no ROS needed).

`pip install .` ships pose_ros.core: estimators, decoders, body models, metrics. The ROS nodes
(pose_ros.ros) and messages (pose_ros.msg) are built and installed by colcon instead (see README);
never put both installs on one Python path.
"""

from setuptools import find_packages, setup

setup(
    name="pose-ros-core",
    version="0.1.0",
    description="Human pose estimation library behind the pose_ros ROS 2 package (bottom-up, top-down, SMPL/HMR)",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=["pose_ros"] + [p for p in find_packages(include=["pose_ros.core", "pose_ros.core.*"])],
    install_requires=["numpy", "scipy", "opencv-python-headless", "pyyaml", "torch", "tqdm"],
    extras_require={
        "onnx": ["onnx", "onnxscript", "onnxruntime"],
        "eval": ["pycocotools"],
        "anny": ["anny==0.6.2"],
    },
)
