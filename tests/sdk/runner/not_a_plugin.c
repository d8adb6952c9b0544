/* A shared object that is not a foxworker plugin. */
int not_a_plugin_value = 1;
