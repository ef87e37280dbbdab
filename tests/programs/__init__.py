"""Programs the tests run in a process of their own (tests/child.py forks one, or
``python -m tests.programs.NAME``): each does its harm (a kill at a chosen point, a pause)
around the real code, then runs it as a person would. Real modules, so that the linter and
the type checker read them too."""
