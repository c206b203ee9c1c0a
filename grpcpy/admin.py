"""grpcpy.admin: the admin services on one call, as grpcio-admin.

    grpcpy.admin.add_admin_servicers(server)

adds channelz (grpcpy.channelz) to a sync or aio server. grpcio-admin also
adds CSDS (the xDS client status service); grpcpy has no xDS yet, so there
is nothing for CSDS to report: it joins here when xDS does.
"""

__all__ = ["add_admin_servicers"]


def add_admin_servicers(server):
    """Add every admin service grpcpy has to ``server`` (sync or aio)."""
    from grpcpy import channelz
    channelz.add_channelz_servicer(server)
