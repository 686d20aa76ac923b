"""One package, two install paths: `colcon build` (ament_python) and `pip install .`."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "depthart_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    description="DepthART monocular depth: VAR transformer, ROS 2 nodes, export, training",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(
        include=["depthart_core", "depthart_core.*", "depthart_ros", "depthart_ros.*"]
    ),
    package_data={"depthart_core": ["data/*.json", "data/*.txt"], "depthart_ros": ["*.xml"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml", "LICENSE"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
        (
            f"share/{PACKAGE}/checkpoints",
            glob("checkpoints/*.safetensors") + glob("checkpoints/*.json"),
        ),
    ],
    install_requires=[
        # 2.4: torch.onnx.export(dynamo=False); 2.3: torch.amp.GradScaler("cuda"). Checked by
        # source (the 2.2.0, 2.3.0 and 2.4.0 wheels' Python, against every torch name and keyword
        # the code uses); tested on 2.13 only. Jetson: NVIDIA's JetPack wheel must be 2.4 or later
        "torch>=2.4",
        "numpy>=1.24",
        "opencv-python-headless>=4.8",
        "safetensors>=0.4",
        "PyYAML>=6.0",
        "tqdm>=4.66",
    ],
    extras_require={
        "ros": [
            "ros-kilted-rclpy",
            "ros-kilted-sensor-msgs",
            "ros-kilted-std-msgs",
            "ros-kilted-diagnostic-msgs",
            "ros-kilted-rmw-fastrtps-cpp",
            # rosio.bags: AnyReader before 0.11.0 read any path that is not a folder as a ROS 1
            # bag (one .mcap or .db3 file, a folder without metadata.yaml: "cannot read bag")
            "rosbags>=0.11.0",
        ],
        # the same on ROS 2 Jazzy's rclpy (7.1.6) in a venv of its own, where apt's ROS is not
        # used: make test VENV=.venv-jazzy EXTRAS=ros-jazzy,onnx,bench,dev,train (README)
        "ros-jazzy": [
            "ros-jazzy-rclpy",
            "ros-jazzy-sensor-msgs",
            "ros-jazzy-std-msgs",
            "ros-jazzy-diagnostic-msgs",
            "ros-jazzy-rmw-fastrtps-cpp",
            "rosbags>=0.11.0",
        ],
        # onnxruntime 1.19.0 and 1.19.2 give the fp16 graph all-NaN depth (`depthart parity`)
        "onnx": ["onnx>=1.16", "onnxruntime>=1.18,!=1.19.*", "onnxscript"],
        "tensorrt": ["tensorrt>=10.0"],
        # training, fine-tuning, synthetic data, dataset evaluation and replay reports only;
        # the nodes never import them (tests/test_package.py). h5py: Hypersim / NYUv2 / TUM
        # HDF5; matplotlib: plots; scipy: nearest-valid-pixel inpainting of depth training
        # targets (tokenizer.codec, so `finetune` too); scikit-image: the photographs the
        # synthetic renderer textures its scenes with (`synth`, `synth-bag`, `train`, make demo)
        "train": ["h5py>=3.9", "matplotlib>=3.7", "scipy>=1.10", "scikit-image>=0.22"],
        "bench": ["transformers>=4.45"],
        # scikit-learn (and scikit-image, matplotlib): training/real_photos.py
        "dev": [
            "pytest>=8",
            "ruff>=0.5",
            "rosbags-image>=0.9",
            "scikit-image>=0.22",
            "scikit-learn>=1.3",
        ],
    },
    entry_points={
        "console_scripts": [
            "depthart = depthart_core.cli:main",
            "depthart-node = depthart_ros.entry:node_main",
            "depthart_node = depthart_ros.entry:node_main",
            "depthart-lifecycle-node = depthart_ros.entry:lifecycle_main",
            "depthart_lifecycle_node = depthart_ros.entry:lifecycle_main",
        ],
        # replay modes depthart_core's `depthart replay` picks up (depthart_core.cli.replay)
        "depthart.replay": ["live = depthart_ros.replay.cli"],
    },
    zip_safe=True,
)
