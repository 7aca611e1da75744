# Compiles the Vulkan compute shaders to SPIR-V with glslc and embeds them into the elm library as a
# generated source file (vk_shader_data.cpp). Shaders that reduce across a workgroup are built twice:
# "<name>_sg" uses subgroup arithmetic, "<name>" only shared memory (devices without subgroup support).
# "gemv_i8*" (-DINT8) is gemv with int8 activations; it uses integer dot products
# (SPV_KHR_integer_dot_product, emitted through GL_EXT_spirv_intrinsics), which the backend only loads on
# devices with the shaderIntegerDotProduct feature. Every module is checked with spirv-val when it is
# installed (SPIRV-Tools).
# Included from src/CMakeLists.txt; sets ELM_VULKAN_SHADER_SOURCE.

set(ELM_SHADER_DIR ${CMAKE_CURRENT_LIST_DIR})
set(ELM_SHADER_OUT ${CMAKE_CURRENT_BINARY_DIR}/vulkan_shaders)
file(MAKE_DIRECTORY ${ELM_SHADER_OUT})

# name source [defines...]
set(ELM_SHADERS
  "embed|embed.comp"
  "matvec|matvec.comp"
  "matvec_sg|matvec.comp|USE_SUBGROUP"
  "gemv|gemv.comp"
  "gemv_sg|gemv.comp|USE_SUBGROUP"
  "gemv_i8|gemv.comp|INT8"
  "gemv_i8_sg|gemv.comp|INT8|USE_SUBGROUP"
  "matmul|matmul.comp"
  "rms_norm|rms_norm.comp"
  "rms_norm_sg|rms_norm.comp|USE_SUBGROUP"
  "unary|unary.comp"
  "binary|binary.comp"
  "copy|copy.comp"
  "rope|rope.comp"
  "kv_write|kv_write.comp"
  "kv_truncate|kv_truncate.comp"
  "argmax|argmax.comp"
  "attention|attention.comp"
  "attention_sg|attention.comp|USE_SUBGROUP")

find_program(ELM_SPIRV_VAL spirv-val)

set(ELM_SPV_FILES)
set(ELM_SPV_NAMES)
foreach(entry ${ELM_SHADERS})
  string(REPLACE "|" ";" parts "${entry}")
  list(GET parts 0 name)
  list(GET parts 1 src)
  list(LENGTH parts n)
  set(defs)
  if(n GREATER 2)
    list(SUBLIST parts 2 -1 extra)
    foreach(d ${extra})
      list(APPEND defs "-D${d}")
    endforeach()
  endif()
  set(spv ${ELM_SHADER_OUT}/${name}.spv)
  set(validate)
  if(ELM_SPIRV_VAL)
    set(validate COMMAND ${ELM_SPIRV_VAL} --target-env vulkan1.2 ${spv})
  endif()
  add_custom_command(
    OUTPUT ${spv}
    COMMAND ${Vulkan_GLSLC_EXECUTABLE} --target-env=vulkan1.2 -O -Werror ${defs} -I ${ELM_SHADER_DIR}
            -MD -MF ${spv}.d -o ${spv} ${ELM_SHADER_DIR}/${src}
    ${validate}
    DEPENDS ${ELM_SHADER_DIR}/${src}
    DEPFILE ${spv}.d
    COMMENT "glslc ${name}.spv"
    VERBATIM)
  list(APPEND ELM_SPV_FILES ${spv})
  list(APPEND ELM_SPV_NAMES ${name})
endforeach()

set(ELM_VULKAN_SHADER_SOURCE ${ELM_SHADER_OUT}/vk_shader_data.cpp)
add_custom_command(
  OUTPUT ${ELM_VULKAN_SHADER_SOURCE}
  COMMAND ${CMAKE_COMMAND} -DOUT=${ELM_VULKAN_SHADER_SOURCE} -DDIR=${ELM_SHADER_OUT} "-DNAMES=${ELM_SPV_NAMES}"
          -P ${ELM_SHADER_DIR}/embed_spirv.cmake
  DEPENDS ${ELM_SPV_FILES} ${ELM_SHADER_DIR}/embed_spirv.cmake
  COMMENT "Embedding SPIR-V shaders"
  VERBATIM)
