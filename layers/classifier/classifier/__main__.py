"""Command line: ``python -m classifier {train,export,evaluate}``. See ``--help`` of each."""

from classifier.training.cli import main

raise SystemExit(main())
