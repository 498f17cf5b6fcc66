"""pip install clients/python: the reelfarm SDK, with stubs generated from ../../proto.

Needs protoc and grpc_python_plugin (Debian: protobuf-compiler, protobuf-compiler-grpc).
"""
import os
import pathlib
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = pathlib.Path(__file__).resolve().parent
PROTO = HERE.parent.parent / "proto"


class BuildWithStubs(build_py):
    def run(self):
        super().run()
        out = pathlib.Path(self.build_lib)
        (out / "reelfarm" / "v1").mkdir(parents=True, exist_ok=True)
        subprocess.check_call([
            "protoc", f"-I{PROTO}", f"--python_out={out}", f"--grpc_out={out}",
            "--plugin=protoc-gen-grpc=" + os.environ.get("GRPC_PYTHON_PLUGIN",
                                                         "/usr/bin/grpc_python_plugin"),
            "reelfarm/v1/jobs.proto", "reelfarm/v1/workers.proto"])
        (out / "reelfarm" / "v1" / "__init__.py").touch()


setup(
    name="reelfarm",
    version="0.1.0",
    description="Python SDK for the reelfarm render/inference farm",
    packages=["reelfarm"],
    install_requires=["grpcio", "protobuf"],
    cmdclass={"build_py": BuildWithStubs},
)
