"""The Docker sandbox: model-written code in a container (issue #19).

- `config`: profiles/sandbox.yaml (packages, image version, limits) as a frozen dataclass.
- `engine`: the Docker engine (the `docker` package on its socket), the container spec, one
  long-lived container with commands run through exec, and reaping of labelled leftovers.
- `image`: `weeyuga sandbox build` (offline: debootstrap + import; with a registry: a Dockerfile
  on the official base) and what image is present.
- `sandbox`: `DockerSandbox` (the agent suite's Sandbox) and `DockerCodeRunner` (codeexec's runner).
- `choice`: docker or process for a run, and the factories the phases use.

Imports go one way: this package uses orchestrator.evaluate.agent and orchestrator.evaluate.quality, never the reverse.
"""
