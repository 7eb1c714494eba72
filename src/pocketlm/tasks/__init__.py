"""Neighbour tasks served beside text generation: translation, speech, speech recognition, embeddings,
image captioning.

One module per task (``translation``, ``speech``, ``transcription``, ``embeddings``,
``captioning``) plus the ``pipeline`` that chains them (image -> caption ->
Portuguese -> speech); the page's Talk tab chains the others in the browser. Each
task's model is loaded lazily, once per process, and shared by every request
and thread (``pocketlm.models.loaded``); ``catalog.task_models()`` lists them with their
task for ``pocketlm models`` and ``GET /v1/models``. ``routes`` and ``commands``
put them on the HTTP server (``routes.install``, the server's feature contract) and the
command line; ``settings`` declares the server settings the tasks add.

The heavy libraries (the translation engine, piper, onnxruntime, CTranslate2,
PyAV, transformers) are imported only when a task is first used, so text generation pays nothing
for tasks it never serves.
"""
