"""graphkit.ascend"""
