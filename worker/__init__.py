"""callbridge: the worker between a CRM and the is74 AI-assistant calling platform."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("callbridge")
except PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0+unknown"
