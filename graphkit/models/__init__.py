"""graphkit.models"""
