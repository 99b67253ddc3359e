"""The one-line --help text of each `ExperimentConfig` field's flag.

`azero_jax.cli.define_config_flags` gives every config field a flag; this
table is its help text (tests check that every field has one). The details
of each field are in the `ExperimentConfig` docstring.
"""

# One line per ExperimentConfig field (the --help text of its flag); see the
# ExperimentConfig docstring for the details.
FIELD_HELP: dict[str, str] = {
    "search_tasks": "tasks searched on (T_search): task preset names and/or TaskSpec dicts (with an optional "
                    "\"preset\" key), as a JSON list; a single name or a comma-separated list of names also works",
    "select_tasks": "tasks that pick each search's best program (T_select), same form as --search_tasks; "
                    "null = search_tasks",
    "final_tasks": "unseen tasks that score the winner once (T_final), same form as --search_tasks; "
                   "null = select_tasks",
    "setup_ops": "ops available to Setup (names or ids; [] freezes Setup)",
    "predict_ops": "ops available to Predict (names or ids; [] freezes Predict)",
    "learn_ops": "ops available to Learn (names or ids; [] freezes Learn)",
    "setup_size_init": "instructions in Setup of an initial program",
    "predict_size_init": "instructions in Predict of an initial program",
    "learn_size_init": "instructions in Learn of an initial program",
    "mutate_setup_size_min": "smallest Setup size that mutations keep",
    "mutate_setup_size_max": "largest Setup size that mutations keep (none or 0 = no limit)",
    "mutate_predict_size_min": "smallest Predict size that mutations keep",
    "mutate_predict_size_max": "largest Predict size that mutations keep (none or 0 = no limit)",
    "mutate_learn_size_min": "smallest Learn size that mutations keep",
    "mutate_learn_size_max": "largest Learn size that mutations keep (none or 0 = no limit)",
    "train_budget": "null, or a JSON object {\"baseline\": \"neural_net\", \"factor\": 2.0}: programs costing more "
                    "than factor x the baseline per example are not trained",
    "max_abs_error": "a task's training stops early once |label - prediction| exceeds this",
    "fec": "functional equivalence cache: null (off), or a JSON object with num_train_examples, "
           "num_valid_examples, cache_size, forget_every (missing keys: the reference defaults)",
    "fitness_combination": "how per-task fitnesses combine: mean or median",
    "population_size": "population size per island",
    "tournament_size": "tournament size of the parent selection",
    "initial_population": "initial programs: noop, random, linear, neural_net or damaged_neural_net",
    "max_train_steps": "train-step budget of each search (experiment)",
    "allowed_mutation_types": "mutation types (e.g. ALTER_PARAM,RANDOMIZE_INSTRUCTION,RANDOMIZE_COMPONENT_FUNCTION)",
    "mutate_prob": "probability that a child is mutated",
    "progress_every": "individuals between progress lines",
    "memory": "[S, V, M]: numbers of scalar, vector and matrix addresses (F comes from the tasks)",
    "max_experiments": "searches to run at most (0 = until sufficient_fitness or the time budget)",
    "sufficient_fitness": "stop once the best select fitness exceeds this (none = never stop early)",
    "randomize_task_seeds": "give each experiment new task data seeds",
    "random_seed": "random seed (0 = time-based; the chosen seed is logged and saved)",
    "backend": "program evaluator",  # the choices are appended when the flag is defined
    "dtype": "compute dtype of the batched backend (float64 agrees with the reference; the reference computes "
             "float64)",
    "children_per_step": "children per evolution step and island, evaluated in one batched call (1 = the "
                         "reference's sequential algorithm)",
    "num_islands": "number of islands",
    "migration_every": "steps between ring migrations of each island's best (0 = never)",
    "island_task_groups": "null, or one group id per search_tasks entry (JSON list): island i searches only on "
                          "group i * G // num_islands",
    "random_search": "every child is a fresh initial program (random-search baseline)",
    "hurdle_tasks": "0 = off; k > 0: a child is first evaluated on the first k search tasks and stops there if "
                    "below the hurdle_percentile of the population",
    "hurdle_percentile": "percentile of the population's fitnesses that a child must reach on the hurdle tasks",
    "search_sufficient_fitness": "none = each search spends its whole max_train_steps; a number = when the best "
                                 "search fitness exceeds it, check that program on the select tasks and end the "
                                 "search if it passes",
    "max_seconds": "wall-clock budget of the whole run in seconds (none = no budget)",
    "checkpoint_path": "checkpoint file (none = <output_dir>/checkpoint.json)",
    "checkpoint_every_seconds": "seconds between checkpoints at sweep boundaries (0 = every sweep, none = only "
                                "at the end of each experiment)",
}
