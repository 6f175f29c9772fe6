"""What a real inference server would do, simulated: tokens, text, latency, errors.

This package stands alone: it imports nothing else of fakeai, and everything in it is a
pure function of its inputs and a seeded random source, so it is testable without a server.
"""
