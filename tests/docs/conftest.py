"""The README tests use pytester to run the README's own pytest example."""

pytest_plugins = ["pytester"]
