"""semrsm.reporting"""
