"""Dockyard: the Docker architecture in Python."""
