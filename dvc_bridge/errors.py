"""The bridge's errors: one base class, specific subclasses with readable messages."""


class BridgeError(RuntimeError):
    """The experiment could not be recorded; the message says why and what to change."""


class TargetError(BridgeError):
    """The target repo is missing, unreachable, or not a DVC repo with this project's layout."""


class RemoteError(BridgeError):
    """The DVC remote is missing or unreachable."""


class ExperimentExistsError(BridgeError):
    """An experiment of that name, from another run, is already in the target repo."""


class PushError(BridgeError):
    """Pushing data or refs failed after retries."""
