"""cifarkit: a CIFAR-10 course kit. (Public names are re-exported here as modules land.)"""
__version__ = "0.1.0"
