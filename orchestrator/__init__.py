"""weeyuga: a local-LLM benchmark node in one command.

The package is a pipeline of stages, each a module with one entry function and one
frozen result: probe -> decide -> launch -> run -> record -> report -> submit, plus tune.
"""

__version__ = "0.1.0"
