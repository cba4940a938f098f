"""The one error configuration raises: it names the setting and the problem."""


class ConfigError(Exception):
    """A setting is missing, malformed or unsupported.

    ``variable`` is the environment variable (or option) at fault, so the message a user sees
    says which knob to turn, never a traceback from inside a driver.
    """

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem


ConfigError.__module__ = "synapsex.config"
