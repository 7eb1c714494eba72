"""What the features of one HTTP service share: its settings, its typed state, the models it serves, the
API-key check.

A layer between the features (api, inspection, web, tasks) and the engine, so that each feature can read
the service's state and protect its routes without importing another feature.
"""

from pocketlm.service.served import Lease, ServedModel, ServedModels
from pocketlm.service.settings import Settings
from pocketlm.service.state import AppState, Feature, ListedModel, app_state, attach

__all__ = [
    "AppState",
    "Feature",
    "Lease",
    "ListedModel",
    "ServedModel",
    "ServedModels",
    "Settings",
    "app_state",
    "attach",
]
