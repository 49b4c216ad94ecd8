"""correlax: find clinically relevant findings in mammograms and explain them with CorRELAX."""

__version__ = "0.1.0"
