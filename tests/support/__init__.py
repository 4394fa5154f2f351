"""Helpers the test suite shares: S3 services, the in-process server, a fault-injecting proxy."""
