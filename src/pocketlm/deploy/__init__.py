"""Adapters that put the one pocketlm app somewhere else: a container, AWS Lambda, a Ray Serve cluster.

Nothing here changes how a request is served: every adapter loads the engine with
``pocketlm.engine.load_engine`` and wraps the app ``pocketlm.server.build_app`` builds,
configured by the same flags and ``POCKETLM_*`` environment variables as ``pocketlm serve``.
The container itself is the ``Dockerfile`` at the root; the SAM template is ``template.yaml``.
"""
