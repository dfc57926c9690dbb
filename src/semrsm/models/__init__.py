"""semrsm.models"""
