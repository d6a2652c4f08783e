"""The composition: the ``trygg`` command (every subcommand), the demo, and serving each service.

The top layer (docs/architecture.md): it imports the services, the simulators and the kernel, and nothing imports
it. Command modules only parse arguments and call logic that lives in the services and the kernel.
"""
