"""The installing methods every observability hook offers."""
from grpcpy import stats


class InstallableHook(stats.Hook):
    """A stats hook that installs itself: register_global() puts it on every
    channel and server made afterwards, deregister_global() stops that,
    and `with hook:` does both around a block (channels and servers made
    inside keep it until they close)."""

    @property
    def hook(self):
        """What to give as the ``grpcpy.stats_hooks`` option: this object
        (observability objects that are not hooks themselves have a hook
        of the same name)."""
        return self

    def register_global(self):
        stats.register_global(self)
        return self

    def deregister_global(self):
        stats.deregister_global(self)

    def __enter__(self):
        return self.register_global()

    def __exit__(self, *exc_info):
        self.deregister_global()
