"""graphkit.eval"""
