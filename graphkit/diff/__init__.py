"""graphkit.diff"""
