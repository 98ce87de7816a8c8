"""graphkit.util"""
