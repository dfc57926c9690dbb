"""semrsm.pipeline"""
