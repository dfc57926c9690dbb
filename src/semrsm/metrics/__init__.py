"""semrsm.metrics"""
