# Shared simulated-LLM implementation; behaviour comes from config.pbtxt (parameter "style").
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

from tokenscope_sim import TritonPythonModel  # noqa: E402,F401
