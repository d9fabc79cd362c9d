"""Build hook for the optional C accelerator of the ETL record loop (everything else is in pyproject.toml).

``optional=True``: where no C compiler is available (or it lacks what the module needs, e.g.
MSVC and ``__int128``), installation goes on and rpctrace decodes in pure Python.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "rpctrace.sources.etl._fastrecords",
            ["src/rpctrace/sources/etl/_fastrecords.c", "src/rpctrace/sources/etl/_fastcalls.c",
             "src/rpctrace/sources/etl/_fastrender.c"],
            depends=["src/rpctrace/sources/etl/_fastrecords.h", "src/rpctrace/sources/etl/_layouts.h"],
            optional=True,
            extra_compile_args=["-O2"],
        )
    ]
)
