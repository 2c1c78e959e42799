"""Benchmarks of callbridge on the machine it runs on: ``python -m bench`` (see the README).

Against the real RabbitMQ and PostgreSQL, with the sandbox as the platform, worker processes
started as in production. ``floor`` is the pipeline without callbridge, ``scenarios`` the
measurements, ``figures`` what is reported and the targets, ``rig`` the services around them.
"""
