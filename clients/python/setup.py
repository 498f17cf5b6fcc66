"""The reelfarm SDK as a wheel, with the gRPC stubs inside.

The build makes it (clients/python/CMakeLists.txt: the stubs generated at build time are
copied beside this file, then `pip wheel --no-deps --no-build-isolation`), giving
build/clients/python/dist/reelfarm-<version>-py3-none-any.whl. From a checkout,
`pip install --no-build-isolation clients/python` generates the stubs from ../../proto
itself (needs protoc and grpc_python_plugin: Debian's protobuf-compiler and
protobuf-compiler-grpc). The version is the project's, from the top CMakeLists.txt
($REELFARM_VERSION when the build passes it).
"""
import os
import pathlib
import re
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = pathlib.Path(__file__).resolve().parent
PROTO = HERE.parent.parent / "proto"
STUBS = ("jobs_pb2.py", "jobs_pb2_grpc.py", "workers_pb2.py", "workers_pb2_grpc.py")


def project_version():
    if os.environ.get("REELFARM_VERSION"):
        return os.environ["REELFARM_VERSION"]
    top = HERE.parent.parent / "CMakeLists.txt"
    found = re.search(r"project\(reelfarm VERSION ([0-9.]+)", top.read_text()) if top.exists() else None
    if not found:
        raise SystemExit("setup.py: no version: set REELFARM_VERSION or build from the checkout")
    return found.group(1)


class BuildWithStubs(build_py):
    """Copies the stubs found beside the sources, else generates them from ../../proto."""

    def run(self):
        super().run()
        out = pathlib.Path(self.build_lib) / "reelfarm" / "v1"
        out.mkdir(parents=True, exist_ok=True)
        given = HERE / "reelfarm" / "v1"
        if all((given / name).exists() for name in STUBS):
            for name in STUBS:
                self.copy_file(str(given / name), str(out / name))
        else:
            subprocess.check_call([
                "protoc", f"-I{PROTO}", f"--python_out={self.build_lib}",
                f"--grpc_out={self.build_lib}",
                "--plugin=protoc-gen-grpc=" + os.environ.get("GRPC_PYTHON_PLUGIN",
                                                             "/usr/bin/grpc_python_plugin"),
                "reelfarm/v1/jobs.proto", "reelfarm/v1/workers.proto"])
        (out / "__init__.py").touch()


setup(
    name="reelfarm",
    version=project_version(),
    description="Python SDK for the reelfarm render/inference farm",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=["reelfarm"],
    package_data={"reelfarm": ["py.typed"]},
    # Debian: python3-grpcio and python3-protobuf (a venv with --system-site-packages).
    install_requires=["grpcio>=1.51", "protobuf>=3.21"],
    cmdclass={"build_py": BuildWithStubs},
)
