"""The demo stage: the embedded mini-DR10 survey (jobs/survey/mock.py) written into the
workspace, launched through the engine like any stage (`halo demo`, `halo stage demo`).

    python -m jobs.stages.demo --workspace DIR [--bricks N] [--seed S] [--brick-px PX]
"""

from jobs.survey.mock import main

if __name__ == "__main__":
    raise SystemExit(main())
