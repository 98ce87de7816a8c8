"""graphkit.ir"""
