metadata(description="The node's config: schema, bounded JSON parser, messages, checks, the file and merge patches.")

# The "sim" section's schema is the simulator's (hal/sim/schema.py), not shipped here.
package("firmware/config", base_path="../..")
