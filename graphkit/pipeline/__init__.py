"""graphkit.pipeline"""
