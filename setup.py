from setuptools import setup

setup(
    name="namemodels",
    version="0.1.0",
    description="Character-level recurrent models for names: fused cells, trainer, export, study",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=[
        "namemodels",
        "namemodels.kernels",
        "namemodels.export",
        "namemodels.bench",
        "namemodels.pretrained",
        "namemodels.commands",
        "namemodels.study",
        "namemodels.inference",
        "namemodels.data",
        "namemodels.training",
    ],
    package_dir={
        "namemodels": "namemodels",
        "namemodels.kernels": "kernels",
        "namemodels.export": "export",
        "namemodels.bench": "bench",
    },
    package_data={
        "namemodels.pretrained": [
            "*/*.json",
            "*/*.safetensors",
            "*/*.onnx",
            "*/*.md",
            "*/*.u32",
            "*/*.npz",
            "build.sh",
        ],
        "namemodels": ["web/*.js", "web/*.mjs", "web/*.html", "web/*.css"],
    },
    # anyascii: transliteration of other scripts (namemodels/text.py); pinned, so that Python and the npm
    # package of the same version transliterate byte for byte alike (TEXT_RULE, ANYASCII_VERSION).
    install_requires=["numpy>=1.23", "onnxruntime>=1.16", "anyascii==0.3.3"],
    extras_require={
        # torch is capped below 2.14 so that CPU machines pick the 2.13.0 CPU build they carry.
        "train": [
            "torch>=2.4,<2.14",
            "triton>=3.6; platform_system=='Linux'",
            "onnx>=1.15",
            "scikit-learn>=1.3",
            "matplotlib>=3.7",
            "tqdm>=4.60",
            "safetensors>=0.4",
        ],
        # openvino (59 MB wheel) and tract (11 MB) so that CI checks the exports in all four ONNX runtimes;
        # the dask extra's packages so that CI runs the Dask LocalCluster test; expecttest so that
        # tests/kernels/test_module_db.py can import torch's own module tests (common_modules).
        "dev": [
            "pytest>=7",
            "hypothesis>=6",
            "openvino>=2024.0",
            "tract>=0.21",
            "dask[dataframe]>=2024.1",
            "distributed>=2024.1",
            "pandas>=2.0",
            "expecttest>=0.2",
            # .ci/check (settings in pyproject.toml): pinned, since each release adds or changes rules
            "ruff==0.17.6",
            "mypy==2.4.1",
        ],
        "runtimes": ["openvino>=2024.0", "tract>=0.21"],
        # namemodels.dask: scoring Dask DataFrames (pulls pandas and pyarrow, ~290 MB installed).
        "dask": ["dask[dataframe]>=2024.1", "distributed>=2024.1", "pandas>=2.0"],
    },
    entry_points={"console_scripts": ["namemodels=namemodels.cli:main"]},
)
