"""semrsm.data"""
