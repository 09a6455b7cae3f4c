"""Runners: one interface for every runtime (edgekit.runners.base); edgekit.dispatch opens the one a file needs."""

from edgekit.runners.base import Runner

__all__ = ["Runner"]
