"""The Lambda entry point ``pocketlm.deploy.lambda_handler.handler``: importing this module loads the model.

Lambda imports the handler's module once per execution environment, during init; loading
the engine here puts that cost in the cold start and keeps it out of every invocation.
"""

from pocketlm.deploy.aws_lambda import handler_from_env

handler = handler_from_env()
