"""Where the cells of a run execute (issue 25): in this process (the runner), in N local worker processes
(``--executor local --jobs N``) or as Slurm jobs through submitit (``--executor slurm``).

Every executor runs the same unit, a `jobs.Job` (one cell, or the cells of a speed group timed together), through
the same worker function (`worker.run_job`), which calls the runner on exactly those cells: records are those of a
sequential run, plus an ``executor`` entry (kind, job id, node, resources). Jobs of one benchmark and setting
share their training stages (same data, schedule and seed); the first of them (its *stage job*) runs first and the
others wait for it (Slurm: ``afterok``), so no two jobs build the same stage at once; the stage cache's file lock
keeps that true across runs and suites submitted at the same time.
"""
